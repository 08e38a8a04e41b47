//! `tmpcopyup`: the contents of a tmpfs mount's destination are copied
//! into the new tmpfs before it covers them, with their modes and owners.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags};

use super::RootfsError;

const WHAT: &str = "mount destination";

/// Copies every entry of the directory `from` into the directory `to`,
/// recursively: directories, regular files, symlinks and device, FIFO and
/// socket nodes, each with its permission bits and owner. Timestamps are
/// not kept. `dest` names the mount in errors.
pub fn copy_tree(from: BorrowedFd<'_>, to: BorrowedFd<'_>, dest: &Path) -> Result<(), RootfsError> {
    let copy = || {
        // Reading entries needs a descriptor opened for reading, where
        // `from` may be an O_PATH handle.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let from = rfs::openat(from, ".", flags, Mode::empty())?;
        copy_dir(from.as_fd(), to)
    };
    copy().map_err(|e| RootfsError::io(WHAT, dest, "tmpcopyup", e))
}

fn copy_dir(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    let mut entries = Dir::read_from(from)?;
    while let Some(entry) = entries.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let stat = rfs::statat(from, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let mode = Mode::from_raw_mode(stat.st_mode & 0o7777);
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                rfs::mkdirat(to, name, Mode::RWXU)?;
                let dir_flags =
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let source = rfs::openat(from, name, dir_flags, Mode::empty())?;
                let target = rfs::openat(to, name, dir_flags, Mode::empty())?;
                copy_dir(source.as_fd(), target.as_fd())?;
                set_owner_and_mode(&target, stat.st_uid, stat.st_gid, mode)?;
            }
            FileType::RegularFile => {
                let source = rfs::openat(
                    from,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let target = rfs::openat(
                    to,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                    Mode::RUSR | Mode::WUSR,
                )?;
                io::copy(
                    &mut File::from(source),
                    &mut File::from(target.try_clone()?),
                )?;
                set_owner_and_mode(&target, stat.st_uid, stat.st_gid, mode)?;
            }
            FileType::Symlink => {
                let link = rfs::readlinkat(from, name, Vec::new())?;
                rfs::symlinkat(&link, to, name)?;
                chown_at(to, name, stat.st_uid, stat.st_gid)?;
            }
            kind => {
                rfs::mknodat(to, name, kind, mode, stat.st_rdev)?;
                chown_at(to, name, stat.st_uid, stat.st_gid)?;
                rfs::chmodat(to, name, mode, AtFlags::empty())?;
            }
        }
    }
    Ok(())
}

fn set_owner_and_mode(fd: &OwnedFd, uid: u32, gid: u32, mode: Mode) -> io::Result<()> {
    let (uid, gid) = (rfs::Uid::from_raw(uid), rfs::Gid::from_raw(gid));
    rfs::fchown(fd, Some(uid), Some(gid))?;
    // After the chown, which clears the set-id bits of a file.
    rfs::fchmod(fd, mode)?;
    Ok(())
}

fn chown_at(dir: BorrowedFd<'_>, name: &std::ffi::CStr, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = (rfs::Uid::from_raw(uid), rfs::Gid::from_raw(gid));
    rfs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}
