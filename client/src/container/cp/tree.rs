//! Copying file trees below directory file descriptors.
//!
//! [`send`] walks a source tree and hands each entry to a [`Sink`]:
//! [`Writer`] recreates the entries below a destination directory, and the
//! archive module writes them to a tar stream. Both sides work only with
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
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _};
use rustix::fs::{
    chownat, fchmod, fchown, fstat, futimens, mkdirat, mknodat, openat, statat, symlinkat,
    unlinkat, utimensat, AtFlags, FileType, Gid, Mode, OFlags, Stat, Timestamps, Uid,
};
use rustix::io::Errno;

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

    fn timestamps(&self) -> Timestamps {
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
    fn ids(self, meta: &Meta) -> (Option<Uid>, Option<Gid>) {
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

/// Applies owner, mode and times to an open file or directory. The mode
/// comes after the owner because chown clears setuid bits.
pub fn apply_metadata(
    fd: impl AsFd,
    meta: &Meta,
    ownership: Ownership,
    describe: impl Fn() -> String,
) -> anyhow::Result<()> {
    let (uid, gid) = ownership.ids(meta);
    fchown(&fd, uid, gid)
        .map_err(|errno| anyhow!("failed to change the owner of {}: {errno}", describe()))?;
    fchmod(&fd, meta.permissions())
        .map_err(|errno| anyhow!("failed to change the mode of {}: {errno}", describe()))?;
    futimens(&fd, &meta.timestamps())
        .map_err(|errno| anyhow!("failed to set the times of {}: {errno}", describe()))?;
    Ok(())
}

/// A directory that a [`Writer`] creates entries in.
pub struct DestDir {
    pub fd: OwnedFd,
    /// The path in the container, None on the host.
    pub path: Option<PathBuf>,
    pub read_only: bool,
    /// Whether `leave_dir` applies the source's owner, mode and times: not
    /// for the destination the copy started in, nor for mount points.
    pub apply: bool,
}

/// A [`Sink`] that recreates entries below a directory.
pub struct Writer<'a> {
    fs: Option<&'a ContainerFs>,
    ownership: Ownership,
    stack: Vec<DestDir>,
    /// Bytes of file content written.
    pub bytes: u64,
}

impl<'a> Writer<'a> {
    /// Creates a writer into `dir`, which belongs to the container of `fs`
    /// when that is given.
    pub fn new(fs: Option<&'a ContainerFs>, dir: DestDir, ownership: Ownership) -> Writer<'a> {
        Writer {
            fs,
            ownership,
            stack: vec![dir],
            bytes: 0,
        }
    }

    fn top(&self) -> &DestDir {
        self.stack
            .last()
            .expect("the writer's first directory is never left")
    }

    fn describe(&self, name: &OsStr) -> String {
        match (&self.top().path, self.fs) {
            (Some(path), Some(fs)) => format!("{}:{}", fs.name, path.join(name).display()),
            _ => PathBuf::from(name).display().to_string(),
        }
    }

    /// Fails when the current directory is read-only.
    fn check_writable(&self, name: &OsStr) -> anyhow::Result<()> {
        if self.top().read_only {
            bail!(
                "cannot write {}: it is on a read-only mount or root filesystem",
                self.describe(name)
            );
        }
        Ok(())
    }

    /// Returns the bind mount at entry `name`, or fails for another kind
    /// of mount there.
    fn mount_at(&self, name: &OsStr) -> anyhow::Result<Option<&super::rootfs::Mount>> {
        let (Some(fs), Some(path)) = (self.fs, &self.top().path) else {
            return Ok(None);
        };
        let path = path.join(name);
        match fs.mount_at(&path) {
            Some(mount) if mount.is_bind() => Ok(Some(mount)),
            Some(mount) => bail!(
                "cannot write {}: it is a {} mount, which exists only inside the running container",
                self.describe(name),
                mount.kind
            ),
            None => Ok(None),
        }
    }

    /// Removes entry `name` of the current directory unless it is a
    /// directory, for a new non-directory to take its place.
    fn remove_non_dir(&self, name: &OsStr) -> anyhow::Result<()> {
        let dir = &self.top().fd;
        match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Directory => bail!(
                "cannot overwrite directory {} with a non-directory",
                self.describe(name)
            ),
            Ok(_) => unlinkat(dir, name, AtFlags::empty())
                .map_err(|errno| anyhow!("failed to replace {}: {errno}", self.describe(name))),
            Err(Errno::NOENT) => Ok(()),
            Err(errno) => Err(anyhow!("failed to read {}: {errno}", self.describe(name))),
        }
    }

    fn apply(
        &self,
        fd: impl AsFd,
        meta: &Meta,
        describe: impl Fn() -> String,
    ) -> anyhow::Result<()> {
        apply_metadata(fd, meta, self.ownership, describe)
    }

    /// Applies owner and times to entry `name` without following it, for
    /// symlinks and device nodes, whose mode was set at creation.
    fn apply_at(&self, name: &OsStr, meta: &Meta) -> anyhow::Result<()> {
        let dir = &self.top().fd;
        let (uid, gid) = self.ownership.ids(meta);
        chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW).map_err(|errno| {
            anyhow!(
                "failed to change the owner of {}: {errno}",
                self.describe(name)
            )
        })?;
        utimensat(dir, name, &meta.timestamps(), AtFlags::SYMLINK_NOFOLLOW).map_err(|errno| {
            anyhow!(
                "failed to set the times of {}: {errno}",
                self.describe(name)
            )
        })?;
        Ok(())
    }

    /// Writes `data` over the file that a bind mount has at `name`, in
    /// place, since replacing it would leave the mount on the old file.
    fn write_mounted_file(
        &mut self,
        mount: &super::rootfs::Mount,
        name: &OsStr,
        meta: &Meta,
        data: &mut dyn Read,
    ) -> anyhow::Result<()> {
        if mount.read_only {
            bail!(
                "cannot write {}: it is mounted read-only",
                self.describe(name)
            );
        }
        let fs = self.fs.expect("mounts exist only in containers");
        let super::rootfs::Node::Entry {
            parent,
            name: file_name,
        } = fs.node(&mount.destination)?
        else {
            bail!(
                "cannot overwrite directory {} with a non-directory",
                self.describe(name)
            );
        };
        let fd = openat(
            &parent,
            &file_name,
            OFlags::WRONLY | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| anyhow!("failed to open {}: {errno}", self.describe(name)))?;
        let mut file = File::from(fd);
        self.bytes += std::io::copy(data, &mut file)
            .with_context(|| format!("failed to write {}", self.describe(name)))?;
        self.apply(&file, meta, || self.describe(name))
    }

    /// Creates directory `name` and makes it the current directory, for
    /// the directory entries that follow, without a sink's metadata.
    pub fn push_dir(&mut self, name: &OsStr) -> anyhow::Result<()> {
        if let Some(mount) = self.mount_at(name)? {
            let fs = self.fs.expect("mounts exist only in containers");
            let fd = fs.open_dir(&mount.destination)?;
            let read_only = mount.read_only;
            self.stack.push(DestDir {
                fd,
                path: Some(mount.destination.clone()),
                read_only,
                apply: false,
            });
            return Ok(());
        }
        self.check_writable(name)?;
        let top = self.top();
        match mkdirat(&top.fd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(errno) => bail!(
                "failed to create directory {}: {errno}",
                self.describe(name)
            ),
        }
        let fd = openat(
            &top.fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| match errno {
            Errno::NOTDIR | Errno::LOOP => anyhow!(
                "cannot overwrite non-directory {} with a directory",
                self.describe(name)
            ),
            errno => anyhow!("failed to open {}: {errno}", self.describe(name)),
        })?;
        let dir = DestDir {
            fd,
            path: top.path.as_ref().map(|path| path.join(name)),
            read_only: top.read_only,
            apply: true,
        };
        self.stack.push(dir);
        Ok(())
    }

    /// Leaves the current directory without changing its metadata, and
    /// returns it.
    pub fn pop_dir(&mut self) -> Option<DestDir> {
        if self.stack.len() > 1 {
            self.stack.pop()
        } else {
            None
        }
    }

    /// Applies `meta` to a directory left with [`Writer::pop_dir`].
    pub fn apply_dir(&self, dir: &DestDir, meta: &Meta) -> anyhow::Result<()> {
        if !dir.apply {
            return Ok(());
        }
        let describe = || match (&dir.path, self.fs) {
            (Some(path), Some(fs)) => format!("{}:{}", fs.name, path.display()),
            _ => String::from("a copied directory"),
        };
        self.apply(&dir.fd, meta, describe)
    }

    /// Creates a hard link `name` to the entry `target_name` of
    /// `target_dir`, replacing a non-directory at `name`.
    pub fn hard_link(
        &mut self,
        name: &OsStr,
        target_dir: &OwnedFd,
        target_name: &OsStr,
    ) -> anyhow::Result<()> {
        if self.mount_at(name)?.is_some() {
            bail!(
                "cannot replace mount point {} with a hard link",
                self.describe(name)
            );
        }
        self.check_writable(name)?;
        self.remove_non_dir(name)?;
        rustix::fs::linkat(
            target_dir,
            target_name,
            &self.top().fd,
            name,
            AtFlags::empty(),
        )
        .map_err(|errno| {
            anyhow!(
                "failed to create hard link {}: {errno}",
                self.describe(name)
            )
        })
    }
}

impl Sink for Writer<'_> {
    fn enter_dir(&mut self, name: &OsStr, _meta: &Meta) -> anyhow::Result<()> {
        self.push_dir(name)
    }

    fn leave_dir(&mut self, meta: &Meta) -> anyhow::Result<()> {
        let dir = self
            .pop_dir()
            .ok_or_else(|| anyhow!("a copy left more directories than it entered"))?;
        self.apply_dir(&dir, meta)
    }

    fn file(&mut self, name: &OsStr, meta: &Meta, data: &mut dyn Read) -> anyhow::Result<()> {
        if let Some(mount) = self.mount_at(name)? {
            let mount = mount.clone();
            return self.write_mounted_file(&mount, name, meta, data);
        }
        self.check_writable(name)?;
        self.remove_non_dir(name)?;
        // O_EXCL with O_NOFOLLOW creates a new file, even when a symlink
        // appeared at the name since it was removed.
        let fd = openat(
            &self.top().fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|errno| anyhow!("failed to create {}: {errno}", self.describe(name)))?;
        let mut file = File::from(fd);
        self.bytes += std::io::copy(data, &mut file)
            .with_context(|| format!("failed to write {}", self.describe(name)))?;
        self.apply(&file, meta, || self.describe(name))
    }

    fn symlink(&mut self, name: &OsStr, meta: &Meta, target: &OsStr) -> anyhow::Result<()> {
        if self.mount_at(name)?.is_some() {
            bail!(
                "cannot replace mount point {} with a symlink",
                self.describe(name)
            );
        }
        self.check_writable(name)?;
        self.remove_non_dir(name)?;
        symlinkat(target, &self.top().fd, name).map_err(|errno| {
            anyhow!("failed to create symlink {}: {errno}", self.describe(name))
        })?;
        self.apply_at(name, meta)
    }

    fn special(&mut self, name: &OsStr, meta: &Meta) -> anyhow::Result<()> {
        if self.mount_at(name)?.is_some() {
            bail!(
                "cannot replace mount point {} with a device or FIFO",
                self.describe(name)
            );
        }
        self.check_writable(name)?;
        self.remove_non_dir(name)?;
        // A umask of 0 makes the mode exact without a chmod afterwards,
        // which could follow a symlink swapped in. hullctl creates no other
        // files meanwhile.
        let umask = rustix::process::umask(Mode::empty());
        let made = mknodat(
            &self.top().fd,
            name,
            meta.file_type(),
            meta.permissions(),
            meta.rdev as _,
        );
        rustix::process::umask(umask);
        made.map_err(|errno| anyhow!("failed to create {}: {errno}", self.describe(name)))?;
        self.apply_at(name, meta)
    }
}
