//! The first fill of a volume from the image: the tree at the mount point
//! in the container's rootfs is copied into the volume's `_data` with its
//! modes, owners, timestamps, symlinks, hard links, device nodes and
//! extended attributes.
//!
//! The rootfs is image content, so every name in it is resolved below a
//! directory descriptor. The mount point is resolved with
//! `RESOLVE_IN_ROOT`, so a symlink there resolves as it would inside the
//! container. Each entry below it is opened with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, so a symlink is copied as a symlink and never
//! followed. Files in the volume are created the
//! same way below its `_data` descriptor.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps,
    XattrFlags,
};
use rustix::io::Errno;

/// Resolution of a name in a directory of the copy: no symlink, no `..`
/// above the directory and no `/proc` magic link is followed.
const CONFINED: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Copies the directory at `target` in `rootfs` into the directory `data`,
/// and gives `data` that directory's owner, mode, attributes and times.
/// Returns false, copying nothing, when `target` does not exist in the
/// rootfs or is not a directory there.
pub fn copy_image_content(
    rootfs: &Path,
    target: &str,
    data: BorrowedFd<'_>,
) -> anyhow::Result<bool> {
    let root = rfs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("failed to open the rootfs {}", rootfs.display()))?;
    let relative = target.trim_start_matches('/');
    let source = match rfs::openat2(
        &root,
        relative,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(false),
        Err(err) => {
            return Err(err).with_context(|| {
                format!("failed to open {target} in the rootfs {}", rootfs.display())
            })
        }
    };

    let root_path = Path::new(target);
    let mut copier = Copier {
        data,
        root: root_path,
        links: HashMap::new(),
        unsupported_xattrs: 0,
    };
    copier.copy_dir(source.as_fd(), data, root_path)?;
    let stat = rfs::fstat(&source)?;
    copier
        .set_attributes(&Node::Fd(data), source.as_fd(), &stat)
        .with_context(|| format!("failed to copy the attributes of {target}"))?;
    if copier.unsupported_xattrs > 0 {
        eprintln!(
            "hullctl: the volume's filesystem does not support {} extended attributes \
             below {target}, which were not copied",
            copier.unsupported_xattrs
        );
    }
    Ok(true)
}

/// A copied file's place for setting its attributes: a descriptor opened
/// for reading or writing, or a name in a directory for symlinks and
/// device, FIFO and socket nodes, which cannot be opened that way.
enum Node<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a CStr),
}

struct Copier<'a> {
    /// The volume's `_data`, below which hard links are resolved.
    data: BorrowedFd<'a>,
    /// The container path that `data` is filled from.
    root: &'a Path,
    /// The first copy of each source file with several links, by device
    /// and inode: its path relative to `data`.
    links: HashMap<(u64, u64), PathBuf>,
    /// Extended attributes that the volume's filesystem rejected with
    /// `ENOTSUP`.
    unsupported_xattrs: usize,
}

impl Copier<'_> {
    /// Copies the entries of `from` into `to`. `path` is the container
    /// path of `from`, for errors.
    fn copy_dir(
        &mut self,
        from: BorrowedFd<'_>,
        to: BorrowedFd<'_>,
        path: &Path,
    ) -> anyhow::Result<()> {
        let mut entries = rfs::Dir::read_from(from)
            .with_context(|| format!("failed to read {}", path.display()))?;
        while let Some(entry) = entries.read() {
            let entry = entry.with_context(|| format!("failed to read {}", path.display()))?;
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            let entry_path = path.join(OsStr::from_bytes(name.to_bytes()));
            self.copy_entry(from, to, name, &entry_path)?;
        }
        Ok(())
    }

    fn copy_entry(
        &mut self,
        from: BorrowedFd<'_>,
        to: BorrowedFd<'_>,
        name: &CStr,
        path: &Path,
    ) -> anyhow::Result<()> {
        let failed = || format!("failed to copy {}", path.display());
        let stat = rfs::statat(from, name, AtFlags::SYMLINK_NOFOLLOW).with_context(failed)?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind != FileType::Directory && stat.st_nlink > 1 {
            let key = file_id(&stat);
            if let Some(first) = self.links.get(&key) {
                return self.link(first, to, name).with_context(failed);
            }
            let relative = path.strip_prefix(self.root).unwrap_or(path);
            self.links.insert(key, relative.to_path_buf());
        }
        match kind {
            FileType::Directory => {
                let (source, target) = make_dir(from, to, name).with_context(failed)?;
                self.copy_dir(source.as_fd(), target.as_fd(), path)?;
                self.set_attributes(&Node::Fd(target.as_fd()), source.as_fd(), &stat)
                    .with_context(failed)
            }
            FileType::RegularFile => self.copy_file(from, to, name, &stat).with_context(failed),
            FileType::Symlink => self
                .copy_symlink(from, to, name, &stat)
                .with_context(failed),
            kind => self
                .copy_node(from, to, name, kind, &stat)
                .with_context(failed),
        }
    }

    fn copy_symlink(
        &mut self,
        from: BorrowedFd<'_>,
        to: BorrowedFd<'_>,
        name: &CStr,
        stat: &Stat,
    ) -> io::Result<()> {
        let link = rfs::readlinkat(from, name, Vec::new())?;
        rfs::symlinkat(&link, to, name)?;
        let source = open_confined_path(from, name)?;
        self.set_attributes(&Node::At(to, name), source.as_fd(), stat)
    }

    /// Copies a device, FIFO or socket node.
    // The type of `st_rdev` differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    fn copy_node(
        &mut self,
        from: BorrowedFd<'_>,
        to: BorrowedFd<'_>,
        name: &CStr,
        kind: FileType,
        stat: &Stat,
    ) -> io::Result<()> {
        let mode = Mode::from_raw_mode(stat.st_mode & 0o7777);
        rfs::mknodat(to, name, kind, mode, stat.st_rdev as rfs::Dev)?;
        let source = open_confined_path(from, name)?;
        self.set_attributes(&Node::At(to, name), source.as_fd(), stat)
    }

    fn copy_file(
        &mut self,
        from: BorrowedFd<'_>,
        to: BorrowedFd<'_>,
        name: &CStr,
        stat: &Stat,
    ) -> io::Result<()> {
        let source = open_confined(from, name, OFlags::RDONLY)?;
        let target = rfs::openat2(
            to,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
            CONFINED,
        )?;
        io::copy(
            &mut File::from(source.try_clone()?),
            &mut File::from(target.try_clone()?),
        )?;
        self.set_attributes(&Node::Fd(target.as_fd()), source.as_fd(), stat)
    }

    /// Links `name` in `to` to the earlier copy at `first` (relative to
    /// `_data`).
    fn link(&self, first: &Path, to: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
        let parent = match first.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => rfs::openat2(
                self.data,
                parent,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                CONFINED,
            )?,
            None => rfs::openat(
                self.data,
                ".",
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
            )?,
        };
        let first_name = first.file_name().unwrap_or_default();
        rfs::linkat(&parent, first_name, to, name, AtFlags::empty())?;
        Ok(())
    }

    /// Gives the copy at `node` the owner, mode, extended attributes and
    /// times of the source: the owner first because a chown clears set-id
    /// bits and file capabilities, the times last because the other changes
    /// touch the change time only.
    fn set_attributes(
        &mut self,
        node: &Node<'_>,
        source: BorrowedFd<'_>,
        stat: &Stat,
    ) -> io::Result<()> {
        let uid = Some(rfs::Uid::from_raw(stat.st_uid));
        let gid = Some(rfs::Gid::from_raw(stat.st_gid));
        let mode = Mode::from_raw_mode(stat.st_mode & 0o7777);
        let times = timestamps(stat);
        let is_symlink = FileType::from_raw_mode(stat.st_mode) == FileType::Symlink;
        match node {
            Node::Fd(fd) => {
                rfs::fchown(fd, uid, gid)?;
                rfs::fchmod(fd, mode)?;
                self.copy_xattrs(source, *fd)?;
                rfs::futimens(fd, &times)?;
            }
            Node::At(dir, name) => {
                // Pin the new entry, so that a container writing to the
                // volume cannot swap it for a symlink that a chmod follows.
                let target = open_confined_path(*dir, name)?;
                let found = rfs::fstat(&target)?;
                if FileType::from_raw_mode(found.st_mode) != FileType::from_raw_mode(stat.st_mode) {
                    return Err(io::Error::other("the copy was replaced while being made"));
                }
                let flags = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW;
                rfs::chownat(&target, c"", uid, gid, flags)?;
                // A symlink has no mode of its own.
                if !is_symlink {
                    rfs::chmod(proc_fd_path(target.as_fd())?.as_c_str(), mode)?;
                }
                self.copy_xattrs(source, target.as_fd())?;
                rfs::utimensat(dir, *name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
            }
        }
        Ok(())
    }

    /// Copies every extended attribute of `from` to `to`. Either may be an
    /// `O_PATH` descriptor of a symlink or node: its attributes are then
    /// reached through `/proc/self/fd`, whose magic link leads to the inode
    /// itself and not to what a symlink points at.
    fn copy_xattrs(&mut self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
        let from = XattrTarget::new(from)?;
        let to = XattrTarget::new(to)?;
        let names = from.list()?;
        for name in names.split(|b| *b == 0).filter(|name| !name.is_empty()) {
            let name = CString::new(name).map_err(io::Error::other)?;
            let value = match from.get(&name) {
                Ok(value) => value,
                // Removed since it was listed.
                Err(Errno::NODATA) => continue,
                Err(err) => return Err(err.into()),
            };
            match to.set(&name, &value) {
                Ok(()) => {}
                Err(Errno::NOTSUP) => self.unsupported_xattrs += 1,
                Err(err) => {
                    return Err(io::Error::new(
                        io::Error::from(err).kind(),
                        format!("failed to set attribute {}: {err}", name.to_string_lossy()),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// A descriptor for the `*xattr` calls: used directly when it was opened
/// for reading or writing, or through its `/proc/self/fd` entry when it is
/// an `O_PATH` descriptor, which `fgetxattr` rejects.
enum XattrTarget<'a> {
    Fd(BorrowedFd<'a>),
    Proc(CString),
}

impl<'a> XattrTarget<'a> {
    fn new(fd: BorrowedFd<'a>) -> io::Result<XattrTarget<'a>> {
        let flags = rfs::fcntl_getfl(fd)?;
        if flags.contains(OFlags::PATH) {
            Ok(XattrTarget::Proc(proc_fd_path(fd)?))
        } else {
            Ok(XattrTarget::Fd(fd))
        }
    }

    fn list(&self) -> io::Result<Vec<u8>> {
        loop {
            let size = match self {
                XattrTarget::Fd(fd) => rfs::flistxattr_query(fd),
                XattrTarget::Proc(path) => rfs::listxattr_query(path.as_c_str()),
            };
            let size = match size {
                Ok(size) => size,
                Err(Errno::NOTSUP) => return Ok(Vec::new()),
                Err(err) => return Err(err.into()),
            };
            let mut names = vec![0u8; size];
            let listed = match self {
                XattrTarget::Fd(fd) => rfs::flistxattr(fd, &mut names[..]),
                XattrTarget::Proc(path) => rfs::listxattr(path.as_c_str(), &mut names[..]),
            };
            match listed {
                Ok(len) => {
                    names.truncate(len);
                    return Ok(names);
                }
                // An attribute was added since the size was read.
                Err(Errno::RANGE) => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }

    fn get(&self, name: &CStr) -> Result<Vec<u8>, Errno> {
        loop {
            let size = match self {
                XattrTarget::Fd(fd) => rfs::fgetxattr_query(fd, name)?,
                XattrTarget::Proc(path) => rfs::getxattr_query(path.as_c_str(), name)?,
            };
            let mut value = vec![0u8; size];
            let read = match self {
                XattrTarget::Fd(fd) => rfs::fgetxattr(fd, name, &mut value[..]),
                XattrTarget::Proc(path) => rfs::getxattr(path.as_c_str(), name, &mut value[..]),
            };
            match read {
                Ok(len) => {
                    value.truncate(len);
                    return Ok(value);
                }
                Err(Errno::RANGE) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    fn set(&self, name: &CStr, value: &[u8]) -> Result<(), Errno> {
        match self {
            XattrTarget::Fd(fd) => rfs::fsetxattr(fd, name, value, XattrFlags::empty()),
            XattrTarget::Proc(path) => {
                rfs::setxattr(path.as_c_str(), name, value, XattrFlags::empty())
            }
        }
    }
}

/// Returns `/proc/self/fd/<fd>`: a path-based call on it acts on the inode
/// that `fd` refers to, also when `fd` is an `O_PATH` descriptor of a
/// symlink.
fn proc_fd_path(fd: BorrowedFd<'_>) -> io::Result<CString> {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(io::Error::other)
}

/// Returns the access and modification times of `stat`.
// The types of the fields differ between architectures.
#[allow(clippy::unnecessary_cast)]
fn timestamps(stat: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: stat.st_atime as i64,
            tv_nsec: stat.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: stat.st_mtime as i64,
            tv_nsec: stat.st_mtime_nsec as _,
        },
    }
}

/// Returns the device and inode number that identify a file.
// The types of the fields differ between architectures.
#[allow(clippy::unnecessary_cast)]
fn file_id(stat: &Stat) -> (u64, u64) {
    (stat.st_dev as u64, stat.st_ino as u64)
}

/// Creates the directory `name` in `to` and opens it and its source.
fn make_dir(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    name: &CStr,
) -> io::Result<(OwnedFd, OwnedFd)> {
    rfs::mkdirat(to, name, Mode::RWXU)?;
    let source = open_confined(from, name, OFlags::RDONLY | OFlags::DIRECTORY)?;
    let target = open_confined(to, name, OFlags::RDONLY | OFlags::DIRECTORY)?;
    Ok((source, target))
}

/// Opens `name` in `dir` without following any symlink.
fn open_confined(dir: BorrowedFd<'_>, name: &CStr, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rfs::openat2(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        CONFINED,
    )?)
}

/// Opens `name` in `dir` as an `O_PATH` descriptor of the entry itself,
/// symlinks included.
fn open_confined_path(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rfs::openat2(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        CONFINED,
    )?)
}
