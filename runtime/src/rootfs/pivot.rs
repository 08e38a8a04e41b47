//! Mount propagation of the new namespace, the bind mount of the rootfs
//! onto itself, and the switch of root (`pivot_root`, `MS_MOVE` + chroot,
//! or a plain chroot).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, StatxFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{
    move_mount, open_tree, unmount, MountPropagationFlags, MoveMountFlags, OpenTreeFlags,
    UnmountFlags,
};
use rustix::process::{chdir, chroot, fchdir};

use super::mountinfo;
use super::options::{MS_PRIVATE, MS_REC, MS_SHARED, MS_SLAVE, MS_UNBINDABLE};
use super::sys::{self, MountAttr, PROC_SUPER_MAGIC};
use super::RootfsError;

const WHAT: &str = "rootfs";

/// Parses `linux.rootfsPropagation`. `None` or an empty value means the
/// default `rslave`.
pub fn parse_root_propagation(value: Option<&str>) -> Result<u64, RootfsError> {
    let flags = match value.unwrap_or_default() {
        "" | "rslave" => MS_SLAVE | MS_REC,
        "slave" => MS_SLAVE,
        "shared" => MS_SHARED,
        "rshared" => MS_SHARED | MS_REC,
        "private" => MS_PRIVATE,
        "rprivate" => MS_PRIVATE | MS_REC,
        "unbindable" => MS_UNBINDABLE,
        "runbindable" => MS_UNBINDABLE | MS_REC,
        other => return Err(RootfsError::InvalidPropagation(other.to_string())),
    };
    Ok(flags)
}

/// Refuses to go on in the mount namespace of pid 1 (normally the host's),
/// so a caller that forgot to unshare never changes the host's mounts.
pub fn ensure_own_mount_namespace() -> Result<(), RootfsError> {
    let own = rfs::stat("/proc/self/ns/mnt");
    let init = rfs::stat("/proc/1/ns/mnt");
    match (own, init) {
        (Ok(own), Ok(init)) if own.st_ino == init.st_ino && own.st_dev == init.st_dev => {
            Err(RootfsError::SharedMountNamespace)
        }
        // Without access to pid 1's namespace (hidepid, no CAP_SYS_PTRACE)
        // the check cannot be made.
        _ => Ok(()),
    }
}

/// Checks that `/proc`, read for mountinfo and cgroups, is a procfs.
pub fn check_host_proc() -> Result<(), RootfsError> {
    let proc_path = Path::new("/proc");
    if !sys::path_fs_type_is(proc_path, PROC_SUPER_MAGIC) {
        return Err(RootfsError::Unexpected {
            path: proc_path.to_path_buf(),
            expected: "a procfs mount",
        });
    }
    Ok(())
}

fn set_propagation(fd: BorrowedFd<'_>, flags: u64, path: &Path) -> Result<(), RootfsError> {
    let attr = MountAttr {
        propagation: flags & !MS_REC,
        ..MountAttr::default()
    };
    sys::mount_setattr_fd(fd, flags & MS_REC != 0, &attr)
        .map_err(|e| RootfsError::io("mount", path, "change of propagation", e))
}

/// Sets the propagation of `/` in the (new) mount namespace.
pub fn set_root_propagation(value: Option<&str>) -> Result<(), RootfsError> {
    let flags = parse_root_propagation(value)?;
    let root = Path::new("/");
    let fd = rfs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::io("mount", root, "open", e))?;
    set_propagation(fd.as_fd(), flags, root)
}

/// Opens the rootfs directory (a host path) as an `O_PATH` handle.
pub fn open_rootfs(rootfs: &Path) -> Result<OwnedFd, RootfsError> {
    rfs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::io(WHAT, rootfs, "open", e))
}

fn mount_id(fd: BorrowedFd<'_>, path: &Path) -> Result<(u64, u64), RootfsError> {
    let stat = rfs::statx(
        fd,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::INO | StatxFlags::MNT_ID,
    )
    .map_err(|e| RootfsError::io(WHAT, path, "statx", e))?;
    Ok((stat.stx_mnt_id, stat.stx_ino))
}

/// Makes the mount that contains the rootfs private when it is shared,
/// because `pivot_root` fails below a shared parent and the bind mount of the
/// rootfs would propagate to the parent's peers. The mount's root is found
/// by walking `..` from the rootfs until the mount id changes.
fn make_parent_private(rootfs_fd: &OwnedFd, rootfs: &Path) -> Result<(), RootfsError> {
    let (id, _) = mount_id(rootfs_fd.as_fd(), rootfs)?;
    let mounts = mountinfo::read_own()
        .map_err(|e| RootfsError::io("host", Path::new("/proc/self/mountinfo"), "read", e))?;
    let shared = mounts.iter().any(|m| m.id == id && m.is_shared());
    if !shared {
        return Ok(());
    }
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut current = rfs::openat(rootfs_fd, ".", flags, Mode::empty())
        .map_err(|e| RootfsError::io(WHAT, rootfs, "open", e))?;
    loop {
        let (_, inode) = mount_id(current.as_fd(), rootfs)?;
        let parent = rfs::openat(&current, "..", flags, Mode::empty())
            .map_err(|e| RootfsError::io(WHAT, rootfs, "open of a parent", e))?;
        let (parent_id, parent_inode) = mount_id(parent.as_fd(), rootfs)?;
        if parent_id != id || parent_inode == inode {
            break;
        }
        current = parent;
    }
    set_propagation(current.as_fd(), MS_PRIVATE, rootfs)
}

/// Bind-mounts the rootfs onto itself (recursively) and returns an `O_PATH`
/// handle of the new mount's root, below which all later paths resolve.
pub fn bind_rootfs(rootfs: &Path) -> Result<OwnedFd, RootfsError> {
    let rootfs_fd = open_rootfs(rootfs)?;
    make_parent_private(&rootfs_fd, rootfs)?;
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE
        | OpenTreeFlags::AT_EMPTY_PATH;
    let tree = open_tree(&rootfs_fd, "", flags)
        .map_err(|e| RootfsError::io(WHAT, rootfs, "open_tree", e))?;
    let move_flags =
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    move_mount(&tree, "", &rootfs_fd, "", move_flags)
        .map_err(|e| RootfsError::io(WHAT, rootfs, "move_mount", e))?;
    Ok(tree)
}

/// Switches root with `pivot_root(".", ".")` and detaches the old root.
pub fn pivot_root(root: OwnedFd) -> Result<(), RootfsError> {
    let slash = Path::new("/");
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let old_root = rfs::open(slash, dir_flags, Mode::empty())
        .map_err(|e| RootfsError::io(WHAT, slash, "open", e))?;
    fchdir(&root).map_err(|e| RootfsError::io(WHAT, slash, "fchdir to the rootfs", e))?;
    // With "." for both arguments the old root ends up mounted on top of
    // the new one, so no directory for it is needed in the rootfs.
    rustix::process::pivot_root(".", ".")
        .map_err(|e| RootfsError::io(WHAT, slash, "pivot_root", e))?;
    fchdir(&old_root).map_err(|e| RootfsError::io(WHAT, slash, "fchdir to the old root", e))?;
    // Keep the unmount from propagating to the host's mounts.
    let slave = MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC;
    rustix::mount::mount_change(".", slave)
        .map_err(|e| RootfsError::io(WHAT, slash, "making the old root rslave", e))?;
    unmount(".", UnmountFlags::DETACH)
        .map_err(|e| RootfsError::io(WHAT, slash, "unmount of the old root", e))?;
    chdir(slash).map_err(|e| RootfsError::io(WHAT, slash, "chdir", e))
}

/// Unmounts (or covers with a tmpfs) every full procfs and sysfs mount
/// outside the rootfs: the kernel allows a new procfs or sysfs mount only
/// where a full one is visible, and with a chroot the host's stay visible.
fn hide_host_pseudo_filesystems(rootfs: &Path) -> Result<(), RootfsError> {
    let mounts = mountinfo::read_own()
        .map_err(|e| RootfsError::io("host", Path::new("/proc/self/mountinfo"), "read", e))?;
    for info in mounts {
        let full = info.root == Path::new("/");
        let pseudo = info.fs_type == "proc" || info.fs_type == "sysfs";
        if !full || !pseudo || info.mount_point.starts_with(rootfs) {
            continue;
        }
        let point = info.mount_point.as_path();
        let slave = MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC;
        match rustix::mount::mount_change(point, slave) {
            Ok(()) => {}
            // A parent was unmounted already.
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(RootfsError::io("mount", point, "making it rslave", e)),
        }
        match unmount(point, UnmountFlags::DETACH) {
            Ok(()) => {}
            Err(Errno::INVAL | Errno::PERM) => rustix::mount::mount(
                "tmpfs",
                point,
                "tmpfs",
                rustix::mount::MountFlags::empty(),
                None,
            )
            .map_err(|e| RootfsError::io("mount", point, "mount of a covering tmpfs", e))?,
            Err(e) => return Err(RootfsError::io("mount", point, "unmount", e)),
        }
    }
    Ok(())
}

/// Moves the rootfs mount onto `/` and chroots into it (`--no-pivot`).
pub fn move_root(root: OwnedFd, rootfs: &Path) -> Result<(), RootfsError> {
    hide_host_pseudo_filesystems(rootfs)?;
    let slash = Path::new("/");
    fchdir(&root).map_err(|e| RootfsError::io(WHAT, rootfs, "fchdir", e))?;
    move_mount(&root, "", CWD, "/", MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .map_err(|e| RootfsError::io(WHAT, rootfs, "move_mount onto /", e))?;
    chroot(".").map_err(|e| RootfsError::io(WHAT, rootfs, "chroot", e))?;
    chdir(slash).map_err(|e| RootfsError::io(WHAT, slash, "chdir", e))
}

/// Chroots into the rootfs without touching any mount.
pub fn chroot_into(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let slash = Path::new("/");
    fchdir(root).map_err(|e| RootfsError::io(WHAT, slash, "fchdir to the rootfs", e))?;
    chroot(".").map_err(|e| RootfsError::io(WHAT, slash, "chroot", e))?;
    chdir(slash).map_err(|e| RootfsError::io(WHAT, slash, "chdir", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_propagation_values() {
        let cases = [
            (None, MS_SLAVE | MS_REC),
            (Some(""), MS_SLAVE | MS_REC),
            (Some("slave"), MS_SLAVE),
            (Some("rslave"), MS_SLAVE | MS_REC),
            (Some("shared"), MS_SHARED),
            (Some("rshared"), MS_SHARED | MS_REC),
            (Some("private"), MS_PRIVATE),
            (Some("rprivate"), MS_PRIVATE | MS_REC),
            (Some("unbindable"), MS_UNBINDABLE),
            (Some("runbindable"), MS_UNBINDABLE | MS_REC),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse_root_propagation(value).unwrap(),
                expected,
                "{value:?}"
            );
        }
        let err = parse_root_propagation(Some("bogus")).unwrap_err();
        assert!(err.to_string().contains("\"bogus\""));
    }
}
