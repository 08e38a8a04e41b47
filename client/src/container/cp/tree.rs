//! Copying file trees below directory file descriptors.
//!
//! [`send_entry`] and [`send_dir`] walk a source tree and hand each entry
//! to a [`Sink`]: the writer module recreates the entries below a
//! destination directory, and the archive module writes them to a tar
//! stream. Both sides work only with
//! `*at` calls relative to directory descriptors and never follow a
//! symlink: symlinks are copied as symlinks. Every directory and file is
//! opened with `O_NOFOLLOW`, so an entry that a running container swaps
//! for a symlink fails the copy instead of redirecting it.
//!
//! NOTE: hard links are not kept: each name of a file is copied as a
//! separate file. Extended attributes are not copied either.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use rustix::fs::{
    fstat, openat, statat, AtFlags, FileType, Gid, Mode, OFlags, Stat, Timestamps, Uid,
};

use super::rootfs::ContainerFs;

/// The metadata that a copy keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// File type and permission bits, as `st_mode`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Device number of character and block devices.
    pub rdev: u64,
    /// Access and modification times as seconds and nanoseconds.
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
}

impl Meta {
    #[allow(clippy::unnecessary_cast)]
    pub fn from_stat(stat: &Stat) -> Meta {
        Meta {
            mode: stat.st_mode as u32,
            uid: stat.st_uid as u32,
            gid: stat.st_gid as u32,
            size: stat.st_size as u64,
            rdev: stat.st_rdev as u64,
            atime: (stat.st_atime as i64, stat.st_atime_nsec as i64),
            mtime: (stat.st_mtime as i64, stat.st_mtime_nsec as i64),
        }
    }

    pub fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }

    /// Returns the permission bits, with setuid, setgid and sticky.
    pub fn permissions(&self) -> Mode {
        Mode::from_raw_mode(self.mode & 0o7777)
    }

    pub fn timestamps(&self) -> Timestamps {
        let timespec = |(seconds, nanoseconds): (i64, i64)| rustix::fs::Timespec {
            tv_sec: seconds,
            tv_nsec: nanoseconds as _,
        };
        Timestamps {
            last_access: timespec(self.atime),
            last_modification: timespec(self.mtime),
        }
    }
}

/// The owner that copied entries get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The source's uid and gid (`cp -a`).
    Keep,
    /// This uid and gid.
    Set(u32, u32),
}

impl Ownership {
    pub fn ids(self, meta: &Meta) -> (Option<Uid>, Option<Gid>) {
        let (uid, gid) = match self {
            Ownership::Keep => (meta.uid, meta.gid),
            Ownership::Set(uid, gid) => (uid, gid),
        };
        // -1 means "leave unchanged" to chown and is no real id.
        let uid = (uid != u32::MAX).then(|| Uid::from_raw(uid));
        let gid = (gid != u32::MAX).then(|| Gid::from_raw(gid));
        (uid, gid)
    }
}

/// The receiver of a walked tree. Entries arrive in order: `enter_dir`,
/// the directory's entries, then `leave_dir`.
pub trait Sink {
    fn enter_dir(&mut self, name: &OsStr, meta: &Meta) -> anyhow::Result<()>;
    fn leave_dir(&mut self, meta: &Meta) -> anyhow::Result<()>;
    fn file(&mut self, name: &OsStr, meta: &Meta, data: &mut dyn Read) -> anyhow::Result<()>;
    fn symlink(&mut self, name: &OsStr, meta: &Meta, target: &OsStr) -> anyhow::Result<()>;
    /// Receives a FIFO or a character or block device.
    fn special(&mut self, name: &OsStr, meta: &Meta) -> anyhow::Result<()>;
}

/// A directory of the source tree, with its path in the container when it
/// belongs to one, so that mounts inside it are found.
pub struct SourceDir<'a> {
    pub fd: OwnedFd,
    pub path: Option<PathBuf>,
    pub fs: Option<&'a ContainerFs>,
}

/// Sends entry `name` of `dir` to `sink` under the name `as_name`, and
/// when it is a directory, everything below it.
pub fn send_entry(
    dir: &SourceDir,
    name: &OsStr,
    as_name: &OsStr,
    sink: &mut dyn Sink,
) -> anyhow::Result<()> {
    let path = dir.path.as_ref().map(|path| path.join(name));
    if let (Some(fs), Some(path)) = (dir.fs, &path) {
        if let Some(mount) = fs.mount_at(path).filter(|mount| mount.is_bind()) {
            // The mount hides the rootfs entry: copy the mount's source.
            return match fs.node(&mount.destination)? {
                super::rootfs::Node::Root(fd) => {
                    let child = SourceDir {
                        fd,
                        path: Some(path.clone()),
                        fs: dir.fs,
                    };
                    send_dir(&child, Some(as_name), sink)
                }
                super::rootfs::Node::Entry { parent, name } => {
                    let parent = SourceDir {
                        fd: parent,
                        path: None,
                        fs: None,
                    };
                    send_entry(&parent, &name, as_name, sink)
                }
            };
        }
    }
    let describe = || describe_path(dir, name);
    let stat = statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|errno| anyhow!("failed to read {}: {errno}", describe()))?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => {
            let fd = openat(
                &dir.fd,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|errno| anyhow!("failed to open {}: {errno}", describe()))?;
            let child = SourceDir {
                fd,
                path,
                fs: dir.fs,
            };
            send_dir(&child, Some(as_name), sink)
        }
        FileType::RegularFile => {
            // O_NONBLOCK keeps a FIFO swapped in since the stat from
            // blocking the open; the type is checked again on the fd.
            let fd = openat(
                &dir.fd,
                name,
                OFlags::RDONLY
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::NOCTTY
                    | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|errno| anyhow!("failed to open {}: {errno}", describe()))?;
            let stat =
                fstat(&fd).map_err(|errno| anyhow!("failed to read {}: {errno}", describe()))?;
            if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
                bail!("{} changed while it was copied", describe());
            }
            let mut file = File::from(fd);
            sink.file(as_name, &Meta::from_stat(&stat), &mut file)
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(&dir.fd, name, Vec::new())
                .map_err(|errno| anyhow!("failed to read {}: {errno}", describe()))?;
            let target = OsStr::from_bytes(target.as_bytes());
            sink.symlink(as_name, &Meta::from_stat(&stat), target)
        }
        FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice => {
            sink.special(as_name, &Meta::from_stat(&stat))
        }
        // Sockets have no content to copy, and tar leaves them out too.
        _ => {
            tracing::debug!(path = %describe(), "skipping a socket");
            Ok(())
        }
    }
}

/// Sends the directory `dir`: as the entry `as_name` with everything
/// below it, or with None only its entries.
pub fn send_dir(
    dir: &SourceDir,
    as_name: Option<&OsStr>,
    sink: &mut dyn Sink,
) -> anyhow::Result<()> {
    let meta = Meta::from_stat(&fstat(&dir.fd)?);
    if let Some(name) = as_name {
        sink.enter_dir(name, &meta)?;
    }
    for name in list_dir(&dir.fd)? {
        send_entry(dir, &name, &name, sink)?;
    }
    if as_name.is_some() {
        sink.leave_dir(&meta)?;
    }
    Ok(())
}

/// Returns the names in directory `fd` but `.` and `..`, sorted so that
/// archives come out the same each time.
fn list_dir(fd: &OwnedFd) -> anyhow::Result<Vec<OsString>> {
    let mut names = Vec::new();
    let dir = rustix::fs::Dir::read_from(fd)?;
    for entry in dir {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn describe_path(dir: &SourceDir, name: &OsStr) -> String {
    match (&dir.path, dir.fs) {
        (Some(path), Some(fs)) => format!("{}:{}", fs.name, path.join(name).display()),
        _ => PathBuf::from(name).display().to_string(),
    }
}
