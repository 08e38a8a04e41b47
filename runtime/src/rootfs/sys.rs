//! Thin wrappers over mount system calls that `rustix` does not cover, and
//! file system magic numbers.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::mount::MountAttrFlags;

/// `statfs` type of procfs (`PROC_SUPER_MAGIC`).
pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// `statfs` type of devpts (`DEVPTS_SUPER_MAGIC`).
pub const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;
/// `statfs` type of the unified cgroup hierarchy (`CGROUP2_SUPER_MAGIC`).
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

pub const ATTR_RDONLY: u64 = MountAttrFlags::MOUNT_ATTR_RDONLY.bits() as u64;
pub const ATTR_NOSUID: u64 = MountAttrFlags::MOUNT_ATTR_NOSUID.bits() as u64;
pub const ATTR_NODEV: u64 = MountAttrFlags::MOUNT_ATTR_NODEV.bits() as u64;
pub const ATTR_NOEXEC: u64 = MountAttrFlags::MOUNT_ATTR_NOEXEC.bits() as u64;
/// Mask of the access-time mode bits, in which `RELATIME` is the value zero.
pub const ATTR_ATIME_MASK: u64 = MountAttrFlags::MOUNT_ATTR__ATIME.bits() as u64;
pub const ATTR_RELATIME: u64 = MountAttrFlags::MOUNT_ATTR_RELATIME.bits() as u64;
pub const ATTR_NOATIME: u64 = MountAttrFlags::MOUNT_ATTR_NOATIME.bits() as u64;
pub const ATTR_STRICTATIME: u64 = MountAttrFlags::MOUNT_ATTR_STRICTATIME.bits() as u64;
pub const ATTR_NODIRATIME: u64 = MountAttrFlags::MOUNT_ATTR_NODIRATIME.bits() as u64;
pub const ATTR_NOSYMFOLLOW: u64 = MountAttrFlags::MOUNT_ATTR_NOSYMFOLLOW.bits() as u64;
pub const ATTR_IDMAP: u64 = MountAttrFlags::MOUNT_ATTR_IDMAP.bits() as u64;

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MountAttr {
    /// `MOUNT_ATTR_*` bits to set.
    pub attr_set: u64,
    /// `MOUNT_ATTR_*` bits to clear. They must include `MOUNT_ATTR__ATIME`
    /// when `attr_set` contains an access-time mode.
    pub attr_clr: u64,
    /// One of `MS_SHARED`, `MS_SLAVE`, `MS_PRIVATE`, `MS_UNBINDABLE`, or 0.
    pub propagation: u64,
    /// User namespace fd whose mappings `MOUNT_ATTR_IDMAP` applies.
    pub userns_fd: u64,
}

impl MountAttr {
    /// Returns true when applying the attribute would change nothing.
    pub fn is_empty(&self) -> bool {
        self.attr_set == 0 && self.attr_clr == 0 && self.propagation == 0
    }

    /// Returns the `MountAttrFlags` that `fsmount(2)` accepts for `attr_set`.
    pub fn fsmount_flags(&self) -> MountAttrFlags {
        MountAttrFlags::from_bits_retain(self.attr_set as u32)
    }
}

/// Calls `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], attr)`, so
/// the mount whose root `fd` refers to gets the attributes.
pub fn mount_setattr_fd(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let empty: &CStr = c"";
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `empty` is a NUL-terminated string and `attr` points to a live
    // `struct mount_attr` whose size is passed along. The kernel only reads
    // both during the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads the messages the kernel queued on a file system context fd
/// (`fsopen`/`fspick`), one per line, so errors can carry them.
pub fn read_fs_context_log(fs_fd: BorrowedFd<'_>) -> String {
    let mut messages = Vec::new();
    let mut buf = [0u8; 1024];
    // The kernel keeps at most 8 messages per context.
    for _ in 0..8 {
        match rustix::io::read(fs_fd, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => messages.push(String::from_utf8_lossy(&buf[..n]).trim_end().to_string()),
        }
    }
    messages.join("; ")
}

/// Replaces fd `target` (0, 1 or 2) with a duplicate of `fd`.
pub fn dup_onto_stdio(fd: BorrowedFd<'_>, target: i32) -> io::Result<()> {
    // SAFETY: dup3 only changes the fd table. `target` is a standard stream
    // that no Rust object owns exclusively, so replacing it leaves no
    // dangling owner.
    let ret = unsafe { libc::dup3(fd.as_raw_fd(), target, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Returns true when the raw fd `fd` is open on a null device (1:3).
pub fn is_null_device(fd: i32) -> bool {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat only writes into `stat`. A closed or invalid fd makes
    // it fail with EBADF, and `stat` is read only after success.
    let ret = unsafe { libc::fstat(fd, stat.as_mut_ptr()) };
    if ret != 0 {
        return false;
    }
    // SAFETY: fstat succeeded, so it filled in `stat`.
    let stat = unsafe { stat.assume_init() };
    stat.st_mode & libc::S_IFMT == libc::S_IFCHR && stat.st_rdev == libc::makedev(1, 3)
}

/// Returns true when the file system of `fd` has the `statfs` type `magic`.
pub fn fs_type_is(fd: BorrowedFd<'_>, magic: i64) -> bool {
    // `f_type` is i64 on x86_64 and narrower on some other targets.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::fstatfs(fd).is_ok_and(|s| s.f_type as i64 == magic)
}

/// Returns true when the file system at `path` (resolved by the kernel
/// from the current root) has the `statfs` type `magic`.
pub fn path_fs_type_is(path: &std::path::Path, magic: i64) -> bool {
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as i64 == magic)
}
