//! Device nodes, `/dev/ptmx` and the `/dev` symlinks.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceType, Spec};
use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Uid, CWD};
use rustix::io::Errno;
use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};

use super::mount::clean_destination;
use super::resolve::{open_in_root, resolve_in_root, Create, ResolveOptions};
use super::sys::{self, DEVPTS_SUPER_MAGIC};
use super::RootfsError;

const WHAT: &str = "device";

/// A device node to create in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Absolute path in the container.
    pub path: PathBuf,
    pub file_type: FileType,
    pub major: u32,
    pub minor: u32,
    /// Permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

fn char_device(path: &str, major: u32, minor: u32) -> Device {
    Device {
        path: PathBuf::from(path),
        file_type: FileType::CharacterDevice,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    }
}

/// Devices every container gets unless the spec lists the same path, with
/// the numbers and modes of runc 1.1.
fn default_devices() -> Vec<Device> {
    vec![
        char_device("/dev/null", 1, 3),
        char_device("/dev/random", 1, 8),
        char_device("/dev/full", 1, 7),
        char_device("/dev/tty", 5, 0),
        char_device("/dev/zero", 1, 5),
        char_device("/dev/urandom", 1, 9),
    ]
}

/// Returns the devices to create: the defaults the spec does not replace,
/// then `linux.devices`. `/dev/ptmx` is left out because it becomes a
/// symlink into devpts.
pub fn device_list(spec: &Spec) -> Result<Vec<Device>, RootfsError> {
    let spec_devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    let mut list: Vec<Device> = default_devices()
        .into_iter()
        .filter(|d| !spec_devices.iter().any(|s| s.path() == &d.path))
        .collect();
    for device in &spec_devices {
        let path = device.path().clone();
        let invalid = |reason: String| RootfsError::InvalidDevice {
            path: path.clone(),
            reason,
        };
        if !path.is_absolute() {
            return Err(invalid("the path must be absolute".to_string()));
        }
        let file_type = match device.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => FileType::CharacterDevice,
            LinuxDeviceType::B => FileType::BlockDevice,
            LinuxDeviceType::P => FileType::Fifo,
            LinuxDeviceType::A => {
                return Err(invalid(
                    "type \"a\" is valid only in cgroup rules".to_string(),
                ))
            }
        };
        let major = u32::try_from(device.major())
            .map_err(|_| invalid(format!("invalid major number {}", device.major())))?;
        let minor = u32::try_from(device.minor())
            .map_err(|_| invalid(format!("invalid minor number {}", device.minor())))?;
        list.push(Device {
            path,
            file_type,
            major,
            minor,
            mode: device.file_mode().unwrap_or(0o666) & 0o7777,
            uid: device.uid().unwrap_or(0),
            gid: device.gid().unwrap_or(0),
        });
    }
    list.retain(|d| clean_destination(&d.path) != Path::new("/dev/ptmx"));
    Ok(list)
}

/// Sets the umask to 0 until dropped, so `mknodat` gives the exact mode.
struct UmaskGuard(Mode);

impl UmaskGuard {
    fn clear() -> Self {
        UmaskGuard(rustix::process::umask(Mode::empty()))
    }
}

impl Drop for UmaskGuard {
    fn drop(&mut self) {
        rustix::process::umask(self.0);
    }
}

/// Creates `devices` below `root`: with `mknodat`, or as bind mounts of
/// the host's nodes in a user namespace or when `mknod` is not permitted.
/// An existing node is kept as it is.
pub fn create_devices(
    root: BorrowedFd<'_>,
    devices: &[Device],
    bind: bool,
) -> Result<(), RootfsError> {
    let _umask = UmaskGuard::clear();
    for device in devices {
        if bind {
            bind_device(root, device)?;
            continue;
        }
        match mknod_device(root, device) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => bind_device(root, device)?,
            result => result?,
        }
    }
    Ok(())
}

fn split_parent(path: &Path) -> Result<(&Path, &std::ffi::OsStr), RootfsError> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(RootfsError::InvalidDevice {
            path: path.to_path_buf(),
            reason: "the path has no file name".to_string(),
        }),
    }
}

fn mknod_device(root: BorrowedFd<'_>, device: &Device) -> Result<(), RootfsError> {
    let path = &device.path;
    let (parent, name) = split_parent(path)?;
    let dir = open_in_root(root, parent, ResolveOptions::create(Create::Directory))
        .map_err(|e| RootfsError::resolve(WHAT, path, e))?;
    let dev = rfs::makedev(device.major, device.minor);
    let mode = Mode::from_raw_mode(device.mode);
    match rfs::mknodat(&dir, name, device.file_type, mode, dev) {
        Ok(()) => {}
        Err(Errno::EXIST) => return Ok(()),
        Err(e) => return Err(RootfsError::io(WHAT, path, "mknod", e)),
    }
    // Change the owner through an O_PATH fd of the node just made, which a
    // rename racing with us cannot swap for another file.
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let node = rfs::openat(&dir, name, flags, Mode::empty())
        .map_err(|e| RootfsError::io(WHAT, path, "open", e))?;
    let stat = rfs::fstat(&node).map_err(|e| RootfsError::io(WHAT, path, "stat", e))?;
    let same_type = FileType::from_raw_mode(stat.st_mode) == device.file_type;
    let same_number = device.file_type == FileType::Fifo || stat.st_rdev == dev;
    if !same_type || !same_number {
        return Err(RootfsError::Unexpected {
            path: path.clone(),
            expected: "the device node just created",
        });
    }
    rfs::chownat(
        &node,
        "",
        Some(Uid::from_raw(device.uid)),
        Some(Gid::from_raw(device.gid)),
        AtFlags::EMPTY_PATH,
    )
    .map_err(|e| RootfsError::io(WHAT, path, "chown", e))
}

/// Bind-mounts the host's node at the same path onto an empty file. The
/// host's node is never changed: no chmod, no chown.
fn bind_device(root: BorrowedFd<'_>, device: &Device) -> Result<(), RootfsError> {
    let path = &device.path;
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    let tree = open_tree(CWD, path, flags)
        .map_err(|e| RootfsError::io("host device", path, "open_tree", e))?;
    let stat = rfs::fstat(&tree).map_err(|e| RootfsError::io("host device", path, "stat", e))?;
    if FileType::from_raw_mode(stat.st_mode) != device.file_type {
        return Err(RootfsError::Unexpected {
            path: path.clone(),
            expected: "a host device node of the type the spec gives",
        });
    }
    let target = resolve_in_root(root, path, ResolveOptions::create(Create::File))
        .map_err(|e| RootfsError::resolve(WHAT, path, e))?;
    let move_flags =
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    move_mount(&tree, "", &target.fd, "", move_flags)
        .map_err(|e| RootfsError::io(WHAT, path, "move_mount", e))
}

fn open_dev(root: BorrowedFd<'_>) -> Result<OwnedFd, RootfsError> {
    let dev = Path::new("/dev");
    open_in_root(root, dev, ResolveOptions::create(Create::Directory))
        .map_err(|e| RootfsError::resolve("directory", dev, e))
}

/// Replaces `/dev/ptmx` by a symlink to `pts/ptmx` when `/dev/pts` is a
/// devpts mount, so the container's own devpts instance serves it.
pub fn setup_ptmx(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let dev = open_dev(root)?;
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let Ok(pts) = rfs::openat(&dev, "pts", flags, Mode::empty()) else {
        return Ok(());
    };
    if !sys::fs_type_is(pts.as_fd(), DEVPTS_SUPER_MAGIC) {
        return Ok(());
    }
    let ptmx = Path::new("/dev/ptmx");
    match rfs::unlinkat(&dev, "ptmx", AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(RootfsError::io("device", ptmx, "unlink", e)),
    }
    rfs::symlinkat("pts/ptmx", &dev, "ptmx")
        .map_err(|e| RootfsError::io("device", ptmx, "symlink", e))
}

/// Creates `/dev/fd`, `/dev/stdin`, `/dev/stdout`, `/dev/stderr`, and
/// `/dev/core` when the kernel has `/proc/kcore`. Existing entries stay.
pub fn setup_dev_symlinks(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let dev = open_dev(root)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    // The host's /proc belongs to the same kernel, so it shows whether
    // CONFIG_PROC_KCORE is set.
    if rfs::statat(CWD, "/proc/kcore", AtFlags::empty()).is_ok() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match rfs::symlinkat(target, &dev, name) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(RootfsError::io(
                    "symlink",
                    &Path::new("/dev").join(name),
                    "create",
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// Checks that `fd` is the null character device (1:3).
pub fn verify_dev_null(fd: BorrowedFd<'_>, path: &Path) -> Result<(), RootfsError> {
    let stat = rfs::fstat(fd).map_err(|e| RootfsError::io("device", path, "stat", e))?;
    let is_char = FileType::from_raw_mode(stat.st_mode) == FileType::CharacterDevice;
    if !is_char || stat.st_rdev != rfs::makedev(1, 3) {
        return Err(RootfsError::Unexpected {
            path: path.to_path_buf(),
            expected: "the null device (character device 1:3)",
        });
    }
    Ok(())
}

/// Points standard streams that use the host's `/dev/null` at the
/// container's `/dev/null`. Runs after the switch of root.
pub fn reopen_dev_null() -> Result<(), RootfsError> {
    let path = Path::new("/dev/null");
    let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC;
    let null = rfs::open(path, flags, Mode::empty())
        .map_err(|e| RootfsError::io("device", path, "open", e))?;
    verify_dev_null(null.as_fd(), path)?;
    for stdio in 0..3 {
        if sys::is_null_device(stdio) {
            sys::dup_onto_stdio(null.as_fd(), stdio)
                .map_err(|e| RootfsError::io("device", path, format!("dup3 onto fd {stdio}"), e))?;
        }
    }
    Ok(())
}
